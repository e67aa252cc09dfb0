"""The one training engine shared by MLM pretraining, fine-tuning and contrastive alignment."""

"""Encoders: k-mer tokenizer, BarcodeBERT (DNA), image and text encoders; the Hugging Face form of DNA model
folders (tokenizer.json, the barcodebert classifier type), model cards and the Hub upload."""

"""Encoders: k-mer tokenizer, BarcodeBERT (DNA), image and text encoders."""

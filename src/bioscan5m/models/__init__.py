"""Encoders: k-mer tokenizer, BarcodeBERT (DNA), its barcode classifier, image and text encoders, CLIBD (with
its logit scale); the Hugging Face form of DNA model folders (tokenizer.json, the barcodebert classifier
type), model cards and the Hub upload."""

#: How BarcodeBERT's token states become one vector: ``masked-mean`` (the real k-mer tokens only) or
#: ``all-positions`` (every position, padding included: the BarcodeBERT authors' fine-tuning). Kept here,
#: free of torch, so that command-line parsers can offer the choice without importing the model.
POOLINGS: tuple[str, ...] = ("masked-mean", "all-positions")

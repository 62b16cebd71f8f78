"""Captions -> one caption: the metrics (BLEU-4, METEOR, ROUGE-L, CIDEr-D), their document
frequencies (`IdfTable`) and the leave-one-out ensemble vote."""

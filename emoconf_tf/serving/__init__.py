"""Serving a trained run: the SavedModel export in TF Serving layout (`export`, with its `model_card`), the network
folded into plain dense layers for inference (`folded_network`), prediction from audio or tables (`prediction`),
reading an export back (`inspect`), the run directory `emoconf train` writes (`rundir`), and numbered model
versions (`versions`)."""

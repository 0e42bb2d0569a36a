"""Serving a trained run: the SavedModel export in TF Serving layout (`export`, with its `model_card`), its
signatures (`serving_module`), their `tf.Example` input (`examples`), TF Serving's warm-up requests (`warmup`) and
the check against the Keras models before publishing (`verification`); the network folded into plain dense layers
for inference (`folded_network`), prediction from audio or tables (`prediction`, its inputs read by
`prediction_inputs`), reading an export back (`inspect`), the run directory `emoconf train` writes (`rundir`, its
files read and checked by `run_files`), and numbered model versions (`versions`)."""

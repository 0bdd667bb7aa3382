"""The training library behind `train_colorization.py` and `train_chroma_prior.py`: their options and checks
(`config`), where photos come from (`sources`), crops and batches (`crops`, `data`), the model a run starts from
(`starting_point`), the objective (`loss`), checkpoints and EMA (`checkpoints`), validation (`validation`) and the
budget record (`budget`). Inference (`import colorize`) never imports it."""

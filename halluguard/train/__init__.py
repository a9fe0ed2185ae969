"""Training: stage A SFT, triplets, stage B DPO in one model, the 3B DPO scorer, the SFT-vs-DPO verdict.

Each stage is a module with a config dataclass, `make_parser()` (a TrlParser: `--config YAML` plus
CLI overrides, unknown keys fail), `run(...)` and `main(argv)`; the scripts in `training/` call `main`.

    halluguard.train.sft        stage A: QLoRA SFT, loss on the summary only
    halluguard.train.triplets   sample k summaries, score with a verifier, perturb references, split by document
    halluguard.train.preference stage B: DPO of the stage-A adapter (reference = frozen copy of that adapter)
    halluguard.train.scorer     the 3B DPO scorer + calibration for the `dpo-reward` verifier
    halluguard.train.verdict    SFT vs DPO on held-out documents, paired tests, the verdict rule
    halluguard.train.ablate     beta / learning rate / 4-bit vs 8-bit / train size ablations
    halluguard.train.dpo        (H7) the stage-B trainer with memory profiles (stock, fit, long, fast)
    halluguard.train.tiling     long-document levers of stages A and B: tiled MLP, segmented attention
"""

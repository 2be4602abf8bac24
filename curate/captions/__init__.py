"""Caption repair: the rule functions (:mod:`curate.captions.rules`), candidate choice
(:mod:`curate.captions.choose`) and the CLIP / CoCa helpers (:mod:`curate.captions.models`).

The stage class that wires them into a pipeline is :mod:`curate.stages.caption_repair`.
"""

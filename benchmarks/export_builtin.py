"""Write a trained model as the shipped built-in ``full`` variant: host in bfloat16 (weights sharded
under 12 MB), tokenizer, processor settings, its recipe.

    python benchmarks/export_builtin.py RUN/model OUT_DIR
"""

import sys
from pathlib import Path

import torch

from tokendynamics.models import CompressedLlavaOnevision
from tokendynamics.models.recipe import save_recipe

source, target = Path(sys.argv[1]), Path(sys.argv[2])
model = CompressedLlavaOnevision.from_pretrained(source, compressor="full")
model.host.to(torch.bfloat16).save_pretrained(target, max_shard_size="12MB")
model.tokenizer.save_pretrained(target)
model.transform.save_pretrained(target)
model.reducer.save_pretrained(target)
if model.recipe:  # frames and answer target: eval and the demo read them
    save_recipe(target, model.recipe)

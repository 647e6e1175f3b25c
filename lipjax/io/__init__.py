"""Pretrained checkpoints of other projects, read into lipjax parameters.

`torch_file` reads PyTorch's `torch.save` files without PyTorch and without running anything
stored in them; `auto_avsr` and `avhubert` map each family's published key layout onto the
lipjax modules that compute the same function (models/frontend.py, models/conformer.py,
models/conv_pos_encoder.py, models/decoder.py); `convert` writes the result as an Orbax
checkpoint plus the model config that fits it, which stage 1 starts from
(configs/units_pretrain.py, `init_from`).
lipjax ships no weights: users convert the files they obtained under each family's licence.
"""

"""Reproducible experiments built from the library's stages (see `recipes/experiments/`).

`does_it_see`: on real images that neither the encoder nor the VLM saw, does a VLM trained only on text answer from
the image, and which modality transfer works best (the paper's Tables 1 and 2, at CPU scale)?
"""

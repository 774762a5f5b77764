"""Cross-modal alignment (seed 003, AstroCLIP §3.3, §5): two pretrained towers (image or spectrum encoders), each
pooled by a cross-attention head into one shared, l2-normalized space, trained with a symmetric InfoNCE.

Modules: ``head`` (the cross-attention pooling head), ``loss`` (symmetric CLIP InfoNCE with cross-process
negatives), ``towers`` (a backbone + head on the encoder interface; freezing; export and ``load(RUN, tower=)``),
``config`` (AlignConfig), ``data`` (paired data: FR-DEEP FIRST/NVSS pairs or a CSV of path_a,path_b[,targets]),
``trainer`` (the alignment loop: optimizer, schedule, checkpoints and exact resume reused from ``tessera.train``),
``results`` (cross-modal retrieval and zero-shot k-NN regression in the shared space).
"""

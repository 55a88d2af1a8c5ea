"""A small GLM (Du et al., ACL 2022): model, tokenizer, corpus, training, inference, serving.

>>> from openautoglm.glm import GLMConfig, load_corpus, train, fill_blank
"""
from __future__ import annotations

from .checkpoint import load_checkpoint, load_glm, save_checkpoint, save_glm
from .data import (
    attention_mask_from_sep,
    blank_infilling,
    load_corpus,
    make_batch,
    sample_spans,
    split_text,
)
from .infer import fill_blank, generate, generate_batch
from .model import GLMConfig, GLMModel, glm_loss
from .serving import (
    DEFAULT_TABLE,
    BatchingServer,
    QueueFullError,
    RateMeter,
    ServerClosedError,
    choose_batch_size,
    glm_server,
)
from .threads import torch_threads, using_threads
from .tokenizer import CharTokenizer, UnknownCharactersWarning
from .train import evaluate, train

__all__ = [
    "BatchingServer",
    "DEFAULT_TABLE",
    "QueueFullError",
    "RateMeter",
    "ServerClosedError",
    "choose_batch_size",
    "glm_server",
    "CharTokenizer",
    "UnknownCharactersWarning",
    "torch_threads",
    "using_threads",
    "GLMConfig",
    "GLMModel",
    "attention_mask_from_sep",
    "blank_infilling",
    "evaluate",
    "fill_blank",
    "generate",
    "generate_batch",
    "glm_loss",
    "load_checkpoint",
    "load_corpus",
    "load_glm",
    "make_batch",
    "sample_spans",
    "save_checkpoint",
    "save_glm",
    "split_text",
    "train",
]

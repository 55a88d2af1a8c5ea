"""Builds openautoglm._C from cuda_ext/ (pattern of pytorch/extension-cpp).

Metadata lives in pyproject.toml; this file only declares the extension.
"""
from setuptools import setup

setup()

"""Build step beside pyproject.toml: the optional C module for erasure-code parity.

``objstore.erasure._gf256`` computes ec parity with vector instructions. It is optional:
where it cannot be compiled (no C compiler), the install goes on and the codec uses zfec
for parity, which produces the same bytes (objstore/erasure/codec.py).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("objstore.erasure._gf256", ["objstore/erasure/_gf256.c"],
                             extra_compile_args=["-O3"], optional=True)])

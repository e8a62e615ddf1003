"""The seed's two examples in Python: a research agent and a document pipeline.

Both run on stand-in activities that return fixed, deterministic data where
the original calls a language model or reads images, so their final
documents can be checked exactly.
"""

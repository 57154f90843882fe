"""The sd-scripts install and its machine.

``discovery`` finds the install, ``probe`` asks its Python about torch, GPUs and packages,
``doctor`` turns the facts into verdicts, ``lycoris_table`` holds the LyCORIS compatibility table
and ``lycoris`` checks jobs against it.
"""

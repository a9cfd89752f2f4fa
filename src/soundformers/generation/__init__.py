"""Search code shared by sequence models: a static KV cache, greedy and beam token selection.

Nothing here knows a model: decoders take a `decode_step` callable or logits.
"""

"""Defaults of embedding extraction, in a module without torch so that ``pigeon embed --help`` shows them."""

#: Images per forward pass.
BATCH_SIZE = 32
#: Rows per shard of the store: the unit of resumption and of the Ray engine's tasks.
SHARD_SIZE = 4096

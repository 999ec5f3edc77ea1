"""Provider adapters, one module per wire protocol. Adapters are pure: they build an HttpCall
and parse an HttpReply; ``workers.http`` does the I/O."""

"""GCL fine-tuning of open_clip models: losses, batch sampling and the distributed context.

`gcl_vectordb` never imports this package; the CLI's `train` command imports it lazily.
"""

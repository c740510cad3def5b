"""gcl-vdb: ranking-aware multimodal product search — GCL fine-tuning, ONNX towers, Qdrant, evaluation."""

__version__ = "0.1.0"

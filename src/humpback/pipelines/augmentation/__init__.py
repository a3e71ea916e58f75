from humpback.pipelines.augmentation.pipeline import create_pipeline

__all__ = ["create_pipeline"]

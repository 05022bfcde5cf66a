"""Thin Luigi tasks over ``pipeline/``; ``luigi --module tasks <Task>`` finds them here."""

from tasks.base import ImagefleetTask, imagefleet
from tasks.build import BuildBaseImage, BuildImages, ConvertImage

__all__ = ["BuildBaseImage", "BuildImages", "ConvertImage", "ImagefleetTask", "imagefleet"]

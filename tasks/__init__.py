"""Thin Luigi tasks over ``pipeline/``; ``luigi --module tasks <Task>`` finds them here."""

from tasks.base import ImagefleetTask, imagefleet
from tasks.build import BuildBaseImage, BuildImages, ConvertImage
from tasks.localboot import LocalBoot
from tasks.publish import Publish, RetainImages
from tasks.upload import UploadImage
from tasks.verify import VerifyImage

__all__ = ["BuildBaseImage", "BuildImages", "ConvertImage", "ImagefleetTask", "LocalBoot",
           "Publish", "RetainImages", "UploadImage", "VerifyImage", "imagefleet"]

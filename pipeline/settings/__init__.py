"""What the operator configured: pipeline.yaml, vendor profiles and clouds.yaml, checked against their schemas."""

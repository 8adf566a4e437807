"""Fixtures for the signal tests (real photographs from scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from .synth import analysis_size


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Three real RGB photographs at analysis size (short side 256)."""
    return {
        "astronaut": analysis_size(data.astronaut()),
        "coffee": analysis_size(data.coffee()),
        "chelsea": analysis_size(data.chelsea()),
    }

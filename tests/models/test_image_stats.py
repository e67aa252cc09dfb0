"""The training-free image baseline encoder on real BIOSCAN crops."""

import numpy as np
import pytest
from PIL import Image

from bioscan5m.embeddings.encoders import create_encoder
from bioscan5m.errors import BioscanError


def test_image_stats_on_real_crops(vendored_data):
    files = sorted((vendored_data / "bioscan1m_crops").glob("*.jpg"))
    images = [Image.open(f) for f in files]
    assert len(images) == 10
    encoder = create_encoder("image-stats-6")
    vectors = encoder.encode(images)
    assert encoder.modality == "image"
    assert vectors.shape == (10, 6**3 + 16 * 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, :216].sum(axis=1), 1.0, rtol=1e-5)  # histograms are distributions
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 216:], axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(encoder.encode(images[:3]), vectors[:3])  # deterministic, batch-independent
    assert len({v.tobytes() for v in vectors}) == 10


def test_image_stats_separates_colours_and_rejects_bad_bins():
    def specimen(colour):  # a coloured bug on a white plate
        image = Image.new("RGB", (40, 30), (255, 255, 255))
        image.paste(colour, (15, 10, 25, 20))
        return image

    red, blue = specimen((250, 10, 10)), specimen((10, 10, 250))
    vectors = create_encoder("image-stats-4").encode([red, blue, Image.new("RGB", (8, 8), (9, 9, 9))])
    assert vectors[0, :64].argmax() != vectors[1, :64].argmax()
    assert vectors[0, :64].max() == 1.0  # the background is left out: the specimen's one colour fills one bin
    np.testing.assert_allclose(vectors[0, 64:], vectors[1, 64:])  # same silhouette
    assert vectors[2, :64].max() == 1.0  # a blank image falls back to all of its pixels
    with pytest.raises(BioscanError, match="between 2 and 32"):
        create_encoder("image-stats-64")

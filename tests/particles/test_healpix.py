"""qltlib.particles.healpix: pixel centres identical to healpy's RING ordering."""
import healpy as hp
import numpy as np
import pytest

from qltlib.particles.healpix import ring_pixel_directions


@pytest.mark.parametrize("nside", [1, 2, 4, 8, 16, 64, 256])
def test_ring_pixel_directions_match_healpy(nside):
    expected = np.array(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)))).T
    np.testing.assert_allclose(ring_pixel_directions(nside), expected, rtol=0, atol=1e-14)


def test_ring_pixel_directions_refuses_bad_nside():
    with pytest.raises(ValueError, match="power of two"):
        ring_pixel_directions(3)

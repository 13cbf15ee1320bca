"""qltlib.plotting: logarithmic axes carry readable labels (no ``2x10^0`` minor labels)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from qltlib.plotting import readable_log_axes  # noqa: E402


def _labels(ticks):
    return [t.get_text() for t in ticks if t.get_text()]


def _draw(fig):
    fig.canvas.draw()


@pytest.fixture
def narrow_log_axes():
    """A log axis spanning half a decade: matplotlib's default labels its minor ticks."""
    fig, ax = plt.subplots()
    ax.semilogy([1, 2, 3], [1.5, 2.5, 4.5])
    yield fig, ax
    plt.close(fig)


def test_default_matplotlib_labels_minor_ticks(narrow_log_axes):
    fig, ax = narrow_log_axes
    _draw(fig)
    assert any("times" in label for label in _labels(ax.yaxis.get_minorticklabels()))


def test_narrow_axis_gets_plain_number_labels(narrow_log_axes):
    fig, ax = narrow_log_axes
    readable_log_axes(fig)
    _draw(fig)
    assert _labels(ax.yaxis.get_minorticklabels()) == []
    low, high = ax.get_ylim()
    visible = [t.get_text() for t in ax.yaxis.get_majorticklabels()
               if t.get_text() and low <= t.get_position()[1] <= high]
    # plain numbers (with one 1-2-5 step in range, matplotlib falls back to linear steps)
    assert "2" in visible and len(visible) >= 2
    assert all(float(label) > 0 for label in visible)


def test_wide_axis_labels_powers_of_ten_only():
    fig, ax = plt.subplots()
    ax.loglog([1e-3, 1e3], [1e-8, 1e-2])
    readable_log_axes(ax)
    _draw(fig)
    for axis in (ax.xaxis, ax.yaxis):
        assert _labels(axis.get_minorticklabels()) == []
        assert all("times" not in label for label in _labels(axis.get_majorticklabels()))
    plt.close(fig)


def test_linear_axes_untouched():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    before = type(ax.xaxis.get_major_formatter())
    readable_log_axes(fig)
    assert type(ax.xaxis.get_major_formatter()) is before
    plt.close(fig)

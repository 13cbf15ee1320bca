"""Plot style shared by the chapters: logarithmic axes with readable tick labels.

Matplotlib labels the *minor* ticks of a logarithmic axis that spans about one decade or less
(``2x10^0``, ``3x10^0``, ... next to ``10^0``), which crowds the axis and is hard to read.
:func:`readable_log_axes` labels powers of ten only and, where an axis spans too few decades
for that, the steps 1, 2, 5 of each decade, written as plain numbers.
"""
from __future__ import annotations

import math

from matplotlib import ticker

#: an axis spanning fewer decades than this is labelled at 1, 2, 5 x 10^n instead of 10^n only
MIN_DECADES_FOR_POWERS_OF_TEN = 2.0


def _plain_number(value: float, _position=None) -> str:
    """``0.2``, ``5``, ``300`` as they are; very small or large values in scientific notation."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10.0**exponent
    if math.isclose(mantissa, 1.0):
        return rf"$10^{{{exponent}}}$"
    return rf"${mantissa:g}\times10^{{{exponent}}}$"


def _style_axis(axis, lower: float, upper: float) -> None:
    axis.set_minor_formatter(ticker.NullFormatter())
    lower, upper = sorted((abs(lower), abs(upper)))
    decades = math.log10(upper / lower) if lower > 0 else math.inf
    if decades < MIN_DECADES_FOR_POWERS_OF_TEN:
        axis.set_major_locator(ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(_plain_number))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10.0))
        axis.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=True))


def readable_log_axes(*targets) -> None:
    """Give every logarithmic axis of ``targets`` readable tick labels.

    Minor ticks keep their marks but lose their labels; major ticks are the powers of ten or,
    on an axis spanning fewer than :data:`MIN_DECADES_FOR_POWERS_OF_TEN` decades, the steps
    1, 2, 5 of each decade as plain numbers. Call it after the data and limits are set (the
    choice depends on the axis range), before the figure is shown.

    Parameters
    ----------
    *targets : matplotlib Axes or Figure
        Axes to style; a Figure stands for all of its axes. Linear axes are left alone.
    """
    for target in targets:
        for ax in getattr(target, "axes", None) if hasattr(target, "savefig") else [target]:
            if ax.get_xscale() == "log":
                _style_axis(ax.xaxis, *ax.get_xlim())
            if ax.get_yscale() == "log":
                _style_axis(ax.yaxis, *ax.get_ylim())

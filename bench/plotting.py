"""Rendering matplotlib figures for files and pages."""
from __future__ import annotations

import io


def png_bytes(fig, dpi: int = 120, **savefig_kwargs) -> bytes:
    """The figure as PNG bytes; the figure is closed, since it is only ever written out once."""
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **savefig_kwargs)
    plt.close(fig)
    return buffer.getvalue()

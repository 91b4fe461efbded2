"""Value types shared by the event models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A JSON number that is never NaN or infinite."""

Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""The owner's forecast that the key result will be hit, 0.0 to 1.0."""

Weight = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
"""A positive, finite weight of a child in its parent's rollup."""

Progress = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""Progress clamped to [0, 1], as it is used wherever it rolls up."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
"""An identifier: letters, digits and ``. _ : / -``, starting with a letter or digit."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]
"""Free text written by a person (non-empty)."""

Principal = Annotated[str, StringConstraints(min_length=1, max_length=320)]
"""Who did it: a user id or e-mail, or ``connector:<name>`` for a connector."""

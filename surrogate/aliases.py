"""The aliases of the model version `porelab train` registers: `latest` always, `champion` by held-out NLL.

`latest` is MLflow's own: a reserved alias that always resolves to the newest version (`models:/NAME@latest`), so
it is never set here; `champion` is set by this rule.

Rule: the new version becomes `champion` when the registered model has no champion yet, or when its held-out ln ICR
NLL (metrics.json `log_icr_nll`: mean Gaussian NLL of ln ICR over the held-out designs' uncensored ±E pairs) is
lower than the current champion's. A version trained without held-out designs (test_fraction 0, or one design) has
no held-out NLL: it takes `champion` only when there is none. A champion without a held-out NLL (set by hand, or
trained without held-out designs) keeps the alias: nothing shows the new one is better. Each version carries its
NLL as the tag `porelab.heldout_log_icr_nll` and the reason it got (or did not get) the alias as `porelab.champion`.
NLLs are compared as recorded, each on its own training's held-out designs.
"""

from __future__ import annotations

import math

LATEST, CHAMPION = "latest", "champion"  # latest: MLflow resolves it to the newest version
NLL_TAG = "porelab.heldout_log_icr_nll"


def heldout_nll(metrics: dict, held_out: bool) -> float | None:
    """The ln ICR NLL of a training's metrics if they are on held-out designs and finite, else None."""
    v = metrics.get("log_icr_nll")
    return float(v) if held_out and isinstance(v, int | float) and math.isfinite(v) else None


def _nll_of(mv) -> float | None:
    v = mv.tags.get(NLL_TAG)
    return float(v) if v is not None else None


def set_aliases(client, name: str, version: str, nll: float | None) -> str:
    """Tag version `version` (the newest, so MLflow's `latest`) of registered model `name` with its held-out NLL and
    point `champion` at it by the module's rule; returns one line: the aliases it has and why."""
    version = str(version)
    if nll is not None:
        client.set_model_version_tag(name, version, NLL_TAG, repr(nll))
    current = client.get_registered_model(name).aliases.get(CHAMPION)
    mine = "no held-out ln ICR NLL" if nll is None else f"held-out ln ICR NLL {nll:.4g}"
    if current is None:
        crown, why = True, f"no champion yet; {mine}"
    else:
        theirs = _nll_of(client.get_model_version(name, str(current)))
        if nll is None:
            crown, why = False, f"version {current} stays champion: this one has {mine}"
        elif theirs is None:
            crown, why = False, f"version {current} stays champion: it has no held-out ln ICR NLL to compare with"
        elif nll < theirs:
            crown, why = True, f"{mine} < {theirs:.4g} of version {current}"
        else:
            crown, why = False, f"version {current} stays champion: {mine} >= {theirs:.4g}"
    if crown:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "porelab.champion", why)
    return f"{name} version {version}: aliases {LATEST}{', ' + CHAMPION if crown else ''} ({why})"

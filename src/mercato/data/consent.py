"""Consent where data is read: which customers may be used for a purpose, in the engine.

The ``consents`` table keeps every change (customer, purpose, granted, ts): the latest row of a
customer and purpose wins. Purposes differ in what silence means:

- **opt-in** purposes (:data:`OPT_IN`: ``email``, ``sms``, ``push``, ``ads``): a customer may be
  contacted only after granting it (GDPR Art. 6(1)(a), the e-Privacy rules on direct marketing);
- **opt-out** purposes (:data:`OPT_OUT`: ``profiling``, ``analytics``, ``personalisation``):
  allowed under legitimate interest until the customer objects (GDPR Art. 21), i.e. until their
  latest row says ``granted = false``.

Models read purchases through :func:`allowed` so a customer who objected to profiling is
neither trained on nor scored; every caller states in its notes how many were left out.
"""

from __future__ import annotations

from typing import Any

from mercato.data.schema import CONSENT_PURPOSES
from mercato.errors import DataError

__all__ = ["OPT_IN", "OPT_OUT", "allowed", "objected"]

OPT_IN: tuple[str, ...] = ("email", "sms", "push", "ads")
OPT_OUT: tuple[str, ...] = ("profiling", "analytics", "personalisation")


def _latest(warehouse: Any, purpose: str) -> Any:
    """Each customer's latest consent row for ``purpose`` (customer_id, granted), or None."""
    import ibis

    if purpose not in CONSENT_PURPOSES:
        raise DataError(
            f"unknown consent purpose {purpose!r}",
            column="purpose",
            value=purpose,
            expected=", ".join(CONSENT_PURPOSES),
        )
    if not warehouse.has_table("consents"):
        return None
    c = warehouse.table("consents")
    c = c.filter(c.purpose == purpose)
    ranked = c.mutate(
        _rank=ibis.row_number().over(
            ibis.window(group_by=c.customer_id, order_by=[c.ts.desc(), c.granted.asc()])
        )
    )
    # on a tie in time, a withdrawal wins (granted False sorts first)
    return ranked.filter(ranked._rank == 0).select("customer_id", "granted")


def objected(warehouse: Any, purpose: str = "profiling") -> Any:
    """An Ibis table of the ``customer_id`` whose latest row for ``purpose`` withdraws it."""
    latest = _latest(warehouse, purpose)
    if latest is None:
        import ibis

        return ibis.memtable({"customer_id": []}, schema={"customer_id": "string"})
    return latest.filter(~latest.granted).select("customer_id")


def allowed(
    warehouse: Any, table: Any, purpose: str = "profiling", column: str = "customer_id"
) -> tuple[Any, Any]:
    """Rows of ``table`` whose person may be used for ``purpose``, and the count left out.

    Rows without a person (``column`` null) are kept: they hold nobody's data to consent to.

    Returns
    -------
    (Ibis table, Ibis scalar)
        The allowed rows, and an expression counting the distinct customers left out.
    """
    import ibis

    latest = _latest(warehouse, purpose)
    named = table.filter(table[column].notnull())
    if purpose in OPT_OUT:
        if latest is None:
            return table, ibis.literal(0)
        no = latest.filter(~latest.granted).select(_cid=latest.customer_id)
        kept = table.anti_join(no, table[column] == no._cid)
        out = named.semi_join(no, named[column] == no._cid)
    elif latest is None:  # opt-in and nobody has granted it
        return table.filter(ibis.literal(False)), named[column].nunique()
    else:
        yes = latest.filter(latest.granted).select(_cid=latest.customer_id)
        kept = table.semi_join(yes, table[column] == yes._cid)
        out = named.anti_join(yes, named[column] == yes._cid)
    return kept, out[column].nunique()

"""The marketing data model: tables, columns, keys, and where a person is.

Every table that holds a person says so (``person``: the column with the customer id, or
``person_via``: how to reach one), and every column holding personal data is marked ``pii`` or
``sensitive``. Erasure, consent checks and pseudonymisation find every trace from here.

Timestamps are stored as UTC without a time zone; money as float64 in the shop's currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mercato.errors import DataError

#: The logical column types and the Ibis type each becomes in the warehouse.
DTYPES = {
    "string": "string",
    "int64": "int64",
    "float64": "float64",
    "bool": "boolean",
    "timestamp": "timestamp",
    "json": "string",  # JSON text: portable across engines
}

EVENT_TYPES = (
    "page_view",
    "view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "begin_checkout",
    "purchase",
    "email_send",
    "email_open",
    "email_click",
    "unsubscribe",
    "ad_impression",
    "ad_click",
    "social_click",
    "push_open",
    "sms_click",
    "signup",
    "login",
)

#: Channels Mercato knows by name; other channel names are accepted as given (lower-cased).
CHANNELS = ("ads", "social", "email", "seo", "sem", "mobile", "direct", "referral", "affiliate")

CONSENT_PURPOSES = ("email", "sms", "push", "personalisation", "profiling", "ads", "analytics")


@dataclass(frozen=True)
class Column:
    """One column of the data model."""

    name: str
    dtype: str
    required: bool = False
    pii: bool = False
    sensitive: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r} for column {self.name!r}")

    @property
    def ibis_type(self) -> str:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class Table:
    """One table of the data model.

    ``key`` identifies a row: re-ingesting a row whose key exists adds nothing.
    ``person`` names the column holding the customer id; ``person_via`` says how a table without
    one reaches a person (``("orders", "order_id")``: through its order).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str
    person: str | None = None
    person_via: tuple[str, str] | None = None
    anonymous: str | None = None
    time_column: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(
            f"table {self.name!r} has no column {name!r}",
            hint=f"its columns: {', '.join(self.column_names)}",
        )

    @property
    def holds_person(self) -> bool:
        return self.person is not None or self.person_via is not None

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    def ibis_schema(self):  # -> ibis.Schema (imported lazily: schema.py stays light)
        import ibis

        return ibis.schema({c.name: c.ibis_type for c in self.columns})


def _c(name: str, dtype: str, **kw) -> Column:
    return Column(name, dtype, **kw)


CUSTOMERS = Table(
    name="customers",
    description="One row per known customer.",
    key=("customer_id",),
    person="customer_id",
    time_column="created_at",
    columns=(
        _c("customer_id", "string", required=True, description="the shop's customer id"),
        _c("created_at", "timestamp", description="when the customer signed up"),
        _c("country", "string"),
        _c("city", "string"),
        _c("email", "string", pii=True),
        _c("phone", "string", pii=True),
        _c("name", "string", pii=True),
        _c("birth_year", "int64", sensitive=True, minimum=1900),
        _c("gender", "string", sensitive=True),
        _c("attributes", "json", description="any further attributes, a JSON object"),
    ),
)

CONSENTS = Table(
    name="consents",
    description="Consent per customer and purpose, with its history: the latest row wins.",
    key=("customer_id", "purpose", "ts"),
    person="customer_id",
    time_column="ts",
    columns=(
        _c("customer_id", "string", required=True),
        _c("purpose", "string", required=True, choices=CONSENT_PURPOSES),
        _c("granted", "bool", required=True),
        _c("ts", "timestamp", required=True, description="when it was given or withdrawn"),
        _c("source", "string", description="where: signup form, preference centre, import..."),
    ),
)

PRODUCTS = Table(
    name="products",
    description="The catalogue.",
    key=("product_id",),
    columns=(
        _c("product_id", "string", required=True),
        _c("name", "string"),
        _c("category", "string"),
        _c("price", "float64", minimum=0),
        _c("description", "string"),
        _c("in_stock", "bool"),
        _c("created_at", "timestamp"),
    ),
)

ORDERS = Table(
    name="orders",
    description="One row per order or cancellation/return document. customer_id is empty for "
    "guest orders.",
    key=("order_id",),
    person="customer_id",
    time_column="ts",
    columns=(
        _c("order_id", "string", required=True),
        _c("customer_id", "string"),
        _c("ts", "timestamp", required=True),
        _c("channel", "string"),
        _c("country", "string"),
        _c("status", "string", choices=("completed", "cancelled", "returned", "pending")),
        _c("currency", "string"),
    ),
)

ORDER_LINES = Table(
    name="order_lines",
    description="Lines of an order; cancellations and returns are lines with negative quantity.",
    key=("order_id", "line_no"),
    person_via=("orders", "order_id"),
    columns=(
        _c("order_id", "string", required=True),
        _c("line_no", "int64", required=True, minimum=1),
        _c("product_id", "string", required=True),
        _c("quantity", "int64", required=True),
        _c("unit_price", "float64", required=True, minimum=0),
    ),
)

EVENTS = Table(
    name="events",
    description="Behavioural events. A known customer has customer_id; a visitor has only "
    "anonymous_id until they log in.",
    key=("event_id",),
    person="customer_id",
    anonymous="anonymous_id",
    time_column="ts",
    columns=(
        _c("event_id", "string", required=True),
        _c("customer_id", "string"),
        _c("anonymous_id", "string", pii=True),
        _c("session_id", "string"),
        _c("ts", "timestamp", required=True),
        _c("event_type", "string", required=True, choices=EVENT_TYPES),
        _c("product_id", "string"),
        _c("channel", "string"),
        _c("campaign_id", "string"),
        _c("value", "float64"),
        _c("properties", "json", description="free-form event properties (search query, page...)"),
    ),
)

CAMPAIGNS = Table(
    name="campaigns",
    description="Marketing campaigns and what they cost.",
    key=("campaign_id",),
    time_column="start_ts",
    columns=(
        _c("campaign_id", "string", required=True),
        _c("name", "string"),
        _c("channel", "string", required=True),
        _c("start_ts", "timestamp"),
        _c("end_ts", "timestamp"),
        _c("cost", "float64", minimum=0),
        _c("objective", "string"),
    ),
)

CAMPAIGN_EXPOSURES = Table(
    name="campaign_exposures",
    description="Who was assigned to which campaign group (randomised treatment or control).",
    key=("campaign_id", "customer_id"),
    person="customer_id",
    time_column="ts",
    columns=(
        _c("campaign_id", "string", required=True),
        _c("customer_id", "string", required=True),
        _c("group", "string", required=True, choices=("treatment", "control")),
        _c("variant", "string", description="which treatment, where a campaign has several"),
        _c("ts", "timestamp", required=True),
    ),
)

TOUCHPOINTS = Table(
    name="touchpoints",
    description="Marketing contacts on the way to a conversion, for attribution.",
    key=("touchpoint_id",),
    person="customer_id",
    anonymous="anonymous_id",
    time_column="ts",
    columns=(
        _c("touchpoint_id", "string", required=True),
        _c("customer_id", "string"),
        _c("anonymous_id", "string", pii=True),
        _c("ts", "timestamp", required=True),
        _c("channel", "string", required=True),
        _c("campaign_id", "string"),
        _c("interaction", "string", choices=("impression", "click", "open", "visit")),
        _c("cost", "float64", minimum=0),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        CUSTOMERS,
        CONSENTS,
        PRODUCTS,
        ORDERS,
        ORDER_LINES,
        EVENTS,
        CAMPAIGNS,
        CAMPAIGN_EXPOSURES,
        TOUCHPOINTS,
    )
}


#: Tables Mercato derives and writes back to the warehouse, with the column that holds a person:
#: erasure and consent checks reach them too.
DERIVED_PERSON_TABLES: dict[str, str] = {
    "customer_rfm": "customer_id",
    "customer_clusters": "customer_id",
    "customer_clv": "customer_id",
    "customer_uplift": "customer_id",
    "customer_propensity": "customer_id",
}


def get_table(name: str) -> Table:
    """The table of the data model called ``name``; a clear error for an unknown name."""
    try:
        return TABLES[name]
    except KeyError:
        raise DataError(
            f"unknown table {name!r}", hint=f"the data model's tables: {', '.join(TABLES)}"
        ) from None


def person_tables() -> list[Table]:
    """Every table that holds a person, directly or through another table."""
    return [t for t in TABLES.values() if t.holds_person]


def schema_markdown() -> str:
    """The data model as Markdown tables (docs/data-model.md embeds this; a test keeps it true)."""
    lines: list[str] = []
    for spec in TABLES.values():
        lines.append(f"### `{spec.name}`\n")
        lines.append(f"{spec.description}\n")
        person = (
            f"person: `{spec.person}`"
            if spec.person
            else (
                f"person: through `{spec.person_via[0]}.{spec.person_via[1]}`"
                if spec.person_via
                else "holds no person"
            )
        )
        lines.append(f"Key: `{', '.join(spec.key)}`; {person}.\n")
        lines.append("| column | type | required | personal | notes |")
        lines.append("|---|---|---|---|---|")
        for c in spec.columns:
            personal = "PII" if c.pii else ("sensitive" if c.sensitive else "")
            notes = []
            if c.choices:
                notes.append("one of " + ", ".join(f"`{x}`" for x in c.choices))
            if c.minimum is not None:
                notes.append(f"at least {c.minimum:g}")
            if c.description:
                notes.append(c.description)
            lines.append(
                f"| `{c.name}` | {c.dtype} | {'yes' if c.required else ''} | {personal} | "
                f"{'; '.join(notes)} |"
            )
        lines.append("")
    return "\n".join(lines)

"""Demo catalog for `microshop seed`: created through the same code path as the API."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

from eventstore import EventStore, Metadata, PostgresEventStore
from eventstore.pg import Pool
from microshop import context
from microshop.config import Config

from . import events as _events  # noqa: F401  (registers the product events)
from .domain import NewProduct, ProductAlreadyExists, SkuTaken
from .handlers import create_product

__all__ = ["DEMO_PRODUCTS", "DemoProduct", "demo_product_id", "seed", "seed_products"]

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://microshop.local/products")


@dataclasses.dataclass(frozen=True, slots=True)
class DemoProduct:
    sku: str
    name: str
    description: str
    price: str
    currency: str = "EUR"

    def command(self) -> NewProduct:
        return NewProduct(
            sku=self.sku,
            name=self.name,
            description=self.description,
            price=Decimal(self.price),
            currency=self.currency,
        )


DEMO_PRODUCTS: tuple[DemoProduct, ...] = (
    DemoProduct(
        "MUG-CER-350",
        "Ceramic Coffee Mug",
        "A 350 ml stoneware mug with a matte glaze that keeps your coffee warm.",
        "12.90",
    ),
    DemoProduct(
        "TEE-ORG-M",
        "Organic Cotton T-Shirt",
        "A soft, breathable crew-neck tee made from 100% organic cotton.",
        "24.50",
    ),
    DemoProduct(
        "BAG-CNV-TOTE",
        "Canvas Tote Bag",
        "A sturdy canvas tote with reinforced handles for groceries and books.",
        "18.00",
    ),
    DemoProduct(
        "BTL-STL-750",
        "Insulated Steel Bottle",
        "A 750 ml double-walled bottle that keeps drinks cold for 24 hours.",
        "29.95",
    ),
    DemoProduct(
        "NTB-DOT-A5",
        "Dotted A5 Notebook",
        "A lay-flat notebook with 192 pages of fountain-pen-friendly dotted paper.",
        "14.90",
    ),
    DemoProduct(
        "PEN-BRS-01",
        "Brass Ballpoint Pen",
        "A solid brass pen that develops a warm patina and takes standard refills.",
        "39.00",
    ),
    DemoProduct(
        "HDP-WL-ANC",
        "Wireless Noise-Cancelling Headphones",
        "Over-ear headphones with active noise cancelling and 30 hours of battery.",
        "199.00",
    ),
    DemoProduct(
        "KBD-MEC-TKL",
        "Mechanical Keyboard TKL",
        "A tenkeyless keyboard with hot-swappable tactile switches and PBT keycaps.",
        "129.00",
    ),
    DemoProduct(
        "LMP-DSK-LED",
        "LED Desk Lamp",
        "A dimmable desk lamp with adjustable colour temperature and a USB-C port.",
        "45.00",
    ),
    DemoProduct(
        "TEA-SEN-100",
        "Japanese Sencha Tea",
        "100 g of first-flush green tea from Shizuoka with a fresh, grassy sweetness.",
        "16.80",
    ),
    DemoProduct(
        "COF-ETH-250",
        "Ethiopian Coffee Beans",
        "250 g of light-roasted Yirgacheffe beans with notes of jasmine and citrus.",
        "13.50",
    ),
    DemoProduct(
        "PLT-SUC-SET",
        "Succulent Trio",
        "Three easy-care succulents in recycled clay pots, ready for a sunny sill.",
        "22.00",
    ),
    DemoProduct(
        "SCK-WOL-PR",
        "Merino Wool Socks",
        "A pair of cushioned merino hiking socks that stay warm and do not itch.",
        "15.90",
    ),
    DemoProduct(
        "BLK-THR-GRY",
        "Knitted Throw Blanket",
        "A chunky knitted throw in heather grey, 130 by 170 cm, machine washable.",
        "59.00",
    ),
)


def demo_product_id(sku: str) -> uuid.UUID:
    """Demo products get stable ids (from the SKU), so demo links survive a re-seed."""
    return uuid.uuid5(_ID_NAMESPACE, sku)


async def seed_products(store: EventStore, pool: Pool, *, actor: str = "seed") -> int:
    """Create the demo products whose SKUs are not taken yet; return how many were created."""
    taken = {
        r["sku"]
        for r in await pool.fetch(
            "SELECT sku FROM product_skus WHERE sku = ANY($1)", [p.sku for p in DEMO_PRODUCTS]
        )
    }
    metadata = Metadata(
        correlation_id=context.correlation_id.get() or context.new_id(),
        actor=actor,
        service="product",
    )
    created = 0
    for demo in DEMO_PRODUCTS:
        if demo.sku in taken:
            continue
        try:
            await create_product(
                store,
                pool,
                demo.command(),
                product_id=demo_product_id(demo.sku),
                metadata=metadata,
            )
        except (SkuTaken, ProductAlreadyExists):  # a concurrent seeder, or leftovers
            continue
        created += 1
    return created


async def seed(config: Config, store: PostgresEventStore) -> list[str]:
    """`microshop seed` for product-service: the demo catalog, what is missing of it."""
    return [f"created {await seed_products(store, store.pool)} demo products"]

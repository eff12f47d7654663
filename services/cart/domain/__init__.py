"""The cart domain: events, the cart as a fold of them, and the decisions (pure, no I/O)."""

from .errors import (
    CurrencyMismatch,
    DomainError,
    ItemNotInCart,
    QuantityOutOfRange,
    UnknownProduct,
)
from .events import (
    CartCheckedOut,
    CartCleared,
    CartEvent,
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
)
from .model import (
    EMPTY,
    MAX_QUANTITY,
    Cart,
    Line,
    add_item,
    apply,
    change_quantity,
    check_out,
    clear,
    fold,
    money,
    remove_item,
)

__all__ = [
    "EMPTY",
    "MAX_QUANTITY",
    "Cart",
    "CartCheckedOut",
    "CartCleared",
    "CartEvent",
    "CartItemAdded",
    "CartItemQuantityChanged",
    "CartItemRemoved",
    "CurrencyMismatch",
    "DomainError",
    "ItemNotInCart",
    "Line",
    "QuantityOutOfRange",
    "UnknownProduct",
    "add_item",
    "apply",
    "change_quantity",
    "check_out",
    "clear",
    "fold",
    "money",
    "remove_item",
]

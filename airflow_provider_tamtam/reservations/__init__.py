"""Credit reservations: concurrent deferrable gates admitted against the balance without overdrawing it."""

from __future__ import annotations

from airflow_provider_tamtam.reservations.desk import ReservationDesk, use_store
from airflow_provider_tamtam.reservations.ledger import Gate, Ledger, Reservation, Standing
from airflow_provider_tamtam.reservations.store import LedgerStore, MemoryStore, VariableStore, store_key

__all__ = [
    "Gate",
    "Ledger",
    "LedgerStore",
    "MemoryStore",
    "Reservation",
    "ReservationDesk",
    "Standing",
    "VariableStore",
    "store_key",
    "use_store",
]

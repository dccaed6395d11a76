from apps.budgets.services import budgets_evaluate
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.MAINTENANCE)
def evaluate_budgets() -> int:
    """Reconcile budget spend from the span table, send threshold alerts, publish hard stops."""
    return budgets_evaluate().evaluated

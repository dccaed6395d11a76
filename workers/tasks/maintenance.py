from apps.accounts.services import invitations_delete_expired
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.MAINTENANCE)
def delete_expired_invitations() -> int:
    return invitations_delete_expired()

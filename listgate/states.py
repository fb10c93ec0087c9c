"""The words of listgate's state machines and closed vocabularies: the one place each is spelled.

Every status/state/kind column holding one of these is typed with its enum
(listgate.models.columns.StateString): the database keeps the plain word in a VARCHAR, so
databases written before these enums existed stay valid, and storing a word that is not a member
fails at flush time. StrEnum members are str, so they compare equal to the word, format as it and
serialise to JSON as it.

The outbox has no state word: an OutboxEntry is pending while done_at is NULL, done once it is
set, and failed for good when failed_at is set too (listgate.status counts them so). A notice
being sent is claimed (claimed_at) while still pending: done_at is set around its final dot.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """Delivery.status: one post to one recipient (worker/delivery.py drives it)."""

    PENDING = "pending"  # recorded by the fan-out, not yet claimed
    SENDING = "sending"  # claimed by a worker (claimed_at); reset to PENDING if the worker dies
    HANDING = "handing"  # the final dot is on its way: assumed SENT if the worker dies now
    SENT = "sent"
    DEFERRED = "deferred"  # the relay said 4xx or could not be reached: retried at next_attempt_at
    BOUNCED = "bounced"  # the relay refused the recipient (5xx at RCPT, or a DSN blaming it)
    REFUSED = (
        "refused"  # the relay refused the message itself: a failed post, scored against nobody
    )
    FAILED = "failed"  # deferred too many times: given up
    CANCELLED = "cancelled"  # not sent: the recipient left, or the moderators removed the post


class DigestState(StrEnum):
    """DigestSent.status: one subscriber's digest of one period (worker/digest.py drives it)."""

    # claimed by a run (a new row starts here, stamped claimed_at); SENDING again from DEFERRED
    # on a resend; a claim older than delivery.STALE_AFTER (its worker died) is resent
    SENDING = "sending"
    HANDING = "handing"  # the final dot is on its way: assumed SENT if the worker dies now
    SENT = "sent"
    DEFERRED = "deferred"  # the relay said 4xx: resent through the outbox with backoff
    BOUNCED = "bounced"
    CANCELLED = "cancelled"  # not owed when a deferred digest was resent (left, suspended);
    # a later run takes it back for whom it is owed again (a reader resumed within its period)


class SubscriptionState(StrEnum):
    """Subscription.status (listgate/subscriptions.py drives it)."""

    PENDING = "pending"  # waiting for the address to confirm
    AWAITING = (
        "awaiting"  # confirmed; a moderator's approval is still needed (private/members lists)
    )
    ACTIVE = "active"
    SUSPENDED = (
        "suspended"  # too many bounces (worker/bounces.py): no mail until it is started again
    )
    ENDED = "ended"  # the row stays (deliveries and bounces point at it) and is reused on return


class PostState(StrEnum):
    """Message.status, what moderation decides: only VISIBLE posts are shown and sent out."""

    VISIBLE = "visible"
    HELD = "held"  # waiting for a moderator (policy, a digest reply...)
    REJECTED = "rejected"  # a moderator refused it
    HIDDEN = "hidden"  # hidden by readers' reports (or a moderator) until a moderator decides
    REMOVED = "removed"  # taken down by the moderators: a tombstone keeps its place in the thread


class ReportState(StrEnum):
    """Report.status: a reader's report of a post."""

    OPEN = "open"
    DISMISSED = "dismissed"  # a moderator kept the post
    ACTIONED = "actioned"  # a moderator hid, rejected or removed the post


class SpoolState(StrEnum):
    """SpooledMail.state. An archived row is deleted in the transaction that archives it.

    Mail archived and not posted is in the not-posted queue (listgate.models.notposted); the rows
    that stay failed to archive, and say why.
    """

    PENDING = "pending"  # accepted (250 given), waiting for the archiver
    # archiving raised an error for this message alone (or its list is gone): `reason` holds it
    FAILED = "failed"


class BounceKind(StrEnum):
    """Bounce.kind: what a relay's refusal or a DSN says about one delivery (worker/bounces.py)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    DELAYED = "delayed"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # the message itself was refused: a failed post, scored against nobody


class PostOrigin(StrEnum):
    """Message.origin: how a post came in (listgate/ingest.py acts on it)."""

    SMTP = "smtp"  # by mail, through the gateway
    IMPORT = "import"  # from an archive (listgate import): no notifications, no moderation
    RELEASE = "release"  # released by a moderator from the not-posted queue
    WEB = "web"  # written in the archive's compose form (its author may edit it for a while)


class SubscriptionKind(StrEnum):
    """Subscription.kind: what a subscription brings (listgate/subscriptions.py)."""

    LIST = "list"  # every post of the list
    DIGEST = "digest"  # the list's posts gathered daily or weekly (Subscription.digest_frequency)
    THREAD = "thread"  # every post of one thread (thread_key), without the rest of the list
    MUTE = "mute"  # none of one thread's posts (thread_key), for a list subscriber


class DigestFrequency(StrEnum):
    """Subscription.digest_frequency and DigestSent.frequency: how often a digest comes."""

    DAILY = "daily"
    WEEKLY = "weekly"


class DigestFormat(StrEnum):
    """Person.digest_format: how a digest is laid out."""

    MIME = "mime"  # multipart/digest, one message/rfc822 part per post
    PLAIN = "plain"  # RFC 1153 plain text


class ListPolicy(StrEnum):
    """MailingList.policy: who may post without a moderator."""

    OPEN = "open"  # anyone
    MEMBERS = "members"  # subscribers and moderators; others are held (and joining needs approval)
    MODERATED = "moderated"  # every post waits for a moderator


class ReplyTo(StrEnum):
    """MailingList.reply_to: the Reply-To the copies sent out carry (worker/headers.py)."""

    NONE = "none"  # none added (an author's own Reply-To is always kept)
    LIST = "list"  # the list (added to the author's)
    AUTHOR = "author"  # the author


class DmarcMode(StrEnum):
    """MailingList.dmarc_mode: when the copies go out From the list (worker/dmarc.py)."""

    AUTO = "auto"  # when the author's domain publishes a strict DMARC policy
    ALWAYS = "always"
    NEVER = "never"

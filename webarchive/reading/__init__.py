"""What the pages read: who may read what, threads in order, listings, search, who talks to whom.

No view and no HTML here: functions take a session and give rows or plain objects.
"""

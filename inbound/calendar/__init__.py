"""Calendar sync of connected mailboxes (the `calendar` role).

where       which service holds a mailbox's calendars: its provider's CalDAV URL,
            Microsoft Graph, or RFC 6764 discovery (SRV, then /.well-known/caldav)
caldav_sync CalDAV: a first sync of the window page by page, then sync-token
            (RFC 6578) changes, or the ctag and ETags where there is no token
graph_sync  Microsoft Graph's calendarView delta: pages, deltaLink, 429 Retry-After,
            a refused token refreshed once
entries     what a calendar holds, written: its resources and their meetings
role        every [calendar] interval, each active mailbox; failures follow the
            mailbox's states
"""

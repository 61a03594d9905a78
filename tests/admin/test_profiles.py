"""The Profiles and channels page over real HTTP with the default profiles: each profile
with what it may read and do, the channel settings, where handoffs go (the console's
inbox once an operator account exists), for admins only and without any form."""
from __future__ import annotations

import re


def test_admins_see_the_profiles_and_channels_read_only(console):
    admin = console.signed_in("admin")
    page = admin.page("/admin/profiles").text
    support = re.search(r'<section class="gap profile" aria-label="support">(.*?)</section>', page, re.S).group(1)
    staff = re.search(r'<section class="gap profile" aria-label="staff">(.*?)</section>', page, re.S).group(1)
    assert "Maison Lumière support" in support and "support · default" in support
    assert "<dt>Knowledge sources</dt><dd>every source in the index</dd>" in support
    assert "<dt>Internal documents</dt><dd>never</dd>" in support
    assert "<dt>Internal documents</dt><dd>in private conversations</dd>" in staff
    assert "<dt>Hands conversations to</dt><dd>admin:inbox (the console&#x27;s inbox)</dd>" in support
    assert "<dt>Turn deadline</dt><dd>120 s</dd>" in support  # the fixture's profiles file
    assert "support@maison-lumiere.example" in support and "<dt>Tools</dt><dd>none</dd>" in staff
    assert re.search(r"<td>slack:\*</td><td>staff</td><td>mention</td>", page)
    assert str(console.runtime.settings.profiles_path) in page
    assert "<form" not in page.split("</nav>", 1)[1]  # read-only: no form but the sign-out one
    assert console.signed_in("agent").http.get("/admin/profiles").status_code == 403

"""The benchmark's users, loaded into both servers (copied next to them as
`bench_identity.py`): token `bench-token` is user `bench`, token `bench-token-<n>` is user
`user<n>`. Each simulated collaborator is a different person, as in a real class or team
(jupyter-collab limits connections per user and room, as a server should).

Only jupyter_server is imported: the module must load in either implementation's
environment.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User

PREFIX = "bench-token"


class BenchUsers(IdentityProvider):
    async def get_user_token(self, handler: Any) -> User | None:  # type: ignore[override]
        token = self.get_token(handler)
        if token == PREFIX:
            return User(username="bench", name="Bench", display_name="Bench", initials="BE")
        if token and token.startswith(PREFIX + "-") and token[len(PREFIX) + 1 :].isdigit():
            n = token[len(PREFIX) + 1 :]
            return User(
                username=f"user{n}", name=f"User {n}", display_name=f"User {n}", initials=f"U{n[-2:]}"
            )
        return None

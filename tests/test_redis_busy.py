"""A burst that takes every pooled Redis connection (hundreds of viewers joining at once) is
this server being busy, not Redis being away: callers get a "busy, try again" refusal and
/healthz keeps saying Redis is fine. A real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from bench.redisserver import redis_server
from server.health import Health
from server.metrics import Metrics
from server.replicas import RedisBusy, RedisClients, RedisDown, Replicas
from server.sessions.directory import SessionDirectory
from server.shares import ShareRegistry

pytestmark = pytest.mark.redis


def replicas_on(clients: RedisClients, health: Health) -> Replicas:
    return Replicas(clients, ShareRegistry(), SessionDirectory(Metrics()), 1024, health)


def test_a_burst_past_the_pool_is_busy_not_down_and_health_stays_ok() -> None:
    async def burst(url: str) -> None:
        clients = RedisClients(url, commands=1, wait_s=0.2)
        health = Health()
        health.ok("redis")
        replicas = replicas_on(clients, health)
        try:
            holder = asyncio.create_task(clients.commands.blpop(["capos:test:never"], timeout=1))
            await asyncio.sleep(0.05)  # the pool's one connection is now taken
            with pytest.raises(RedisBusy, match="connections to it are all busy; try again"):
                await replicas.viewers("some-session")
            assert health.report()[0] == 200
            assert replicas.up
            await holder
            assert await replicas.viewers("some-session") == []  # free again: it answers
        finally:
            await clients.aclose()

    with redis_server() as url:
        asyncio.run(burst(url))


def test_a_redis_that_is_away_is_still_down_and_health_says_so() -> None:
    async def away(url: str) -> None:
        clients = RedisClients(url, commands=1, wait_s=0.2)
        health = Health()
        replicas = replicas_on(clients, health)
        try:
            with pytest.raises(RedisDown, match="cannot reach now") as refused:
                await replicas.viewers("some-session")
            assert not isinstance(refused.value, RedisBusy)
            assert health.report()[0] == 503
            assert "redis" in health.report()[1]["down"]
        finally:
            await clients.aclose()

    with redis_server() as url:
        pass  # started and stopped: nothing listens on its port any more
    asyncio.run(away(url))

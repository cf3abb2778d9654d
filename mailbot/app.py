"""Builds a running mailbot from its configuration: one place, one order."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from mailbot import examples, logsafe, tagging
from mailbot import rules as rules_module
from mailbot.classify import Classifier
from mailbot.clock import Clock
from mailbot.compose import Composer
from mailbot.config import Config
from mailbot.phrases import PhraseSet
from mailbot.pipeline import Pipeline
from mailbot.rules import Rules
from mailbot.senders import open_sender
from mailbot.sources import open_source
from mailbot.store import Store
from mailbot.tokens import Tokens, load_key
from mailbot.workflow import Workflow
from mailbot.workhours import WorkingTime

log = logging.getLogger(__name__)

def composer_for(config: Config, salt: str = "",
                 tokens: Tokens | None = None) -> Composer:
    """The composer for a config. Mail it builds carries signed references
    only when given `tokens` (the daemon's); a preview or a check renders
    without them, and so never makes the key."""
    composer = Composer(config.templates_dir, config.sender_name,
                        config.programme_address, {
                            "programme_name": config.programme_name,
                            "programme_address": config.programme_address,
                            "sender_name": config.sender_name,
                        }, salt=salt, tokens=tokens,
                        plus_addressing=config.security.plus_addressing)
    composer.check(examples.variants())
    return composer


def load_rules(config: Config) -> tuple[Rules, WorkingTime]:
    rules = rules_module.load(config.rules_dir)
    hours = WorkingTime(rules.working_hours, rules.public_holidays, rules.closures)
    return rules, hours


def workflow_for(config: Config, store: Store, clock: Clock) -> Workflow:
    rules, hours = load_rules(config)
    tokens = Tokens(load_key(config.security.key_file))
    composer = composer_for(config, store.instance_id(), tokens)
    return Workflow(config, rules, store, composer, clock, hours, tokens)


@dataclass
class Mailbot:
    config: Config
    store: Store
    pipeline: Pipeline

    def close(self) -> None:
        self.pipeline.source.close()
        self.pipeline.sender.close()
        self.store.close()
        gc.unfreeze()


def open_mailbot(config: Config, clock: Clock) -> Mailbot:
    """Everything `run` needs, with the record locked for this process."""
    # A member of staff's reference helps authenticate their commands, and
    # every message to staff carries it in its Message-ID: from here on
    # every log record has references and the config's secrets masked
    # (the command line installs the same; installing twice changes nothing).
    logsafe.install(logsafe.secrets_of(config))
    # Garbage from before (a record closed in this process) is collected
    # now, while it is cheap, rather than frozen below with the rest.
    gc.collect()
    store = Store(config.store_path)
    store.lock()
    flow = workflow_for(config, store, clock)
    phrases = flow.rules.phrases
    classifier = Classifier(PhraseSet(phrases.completion, phrases.negations),
                            PhraseSet(phrases.visit_request, phrases.negations),
                            flow.tokens, config.programme_people,
                            # progress.py: "where do we stand?"
                            where_we_stand=PhraseSet(phrases.where_we_stand,
                                                     phrases.negations))
    source = open_source(config.mailbox)
    sender = open_sender(config.sending, config.programme_address)
    pipeline = Pipeline(store, source, sender, flow, classifier, clock)
    # The comment tagger (rules/criteria.toml) is built now, once: a
    # mistake in its rules stops start-up rather than the first comment,
    # and no poll waits for it.
    tagging.default_tagger()
    # What is here now (the record as read, the templates, the rules)
    # lives as long as the daemon: the cyclic collector leaves it alone
    # from now on instead of going through all of it at each full
    # collection (with the record of 100,000 messages, over half the time
    # a message took). Documents changed later are looked at as ever.
    gc.freeze()
    return Mailbot(config, store, pipeline)

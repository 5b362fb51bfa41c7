/**
 * Where alerts go: a webhook receiving the alert as JSON, a Slack-compatible incoming webhook
 * (`{text}`), or email over SMTP (nodemailer, loaded only by pipelines that send email). Every
 * text has been redacted before it gets here; a target only shapes and sends it.
 */
import type { AlertTargetT } from '../config/schema.js';

/** One alert, as every target receives it. */
export interface Alert {
  pipeline: string;
  kind: AlertKind;
  /** One line: the subject of an email, the first line of a chat message. */
  title: string;
  /** A few lines: what happened, which files, what to do. */
  text: string;
  /** ISO 8601. */
  at: string;
  /** Alerts of this kind held back by the rate limit since the last one sent. */
  suppressed: number;
  details: Record<string, unknown>;
}

export type AlertKind = 'failures' | 'parked' | 'recovered' | 'reload_rejected' | 'missed_arrival';

export interface AlertTarget {
  /** `webhook https://hooks.example.com/…` with the URL's path and query left out (they may hold a token). */
  readonly name: string;
  send(alert: Alert, signal: AbortSignal): Promise<void>;
}

export function alertTarget(config: AlertTargetT): AlertTarget {
  if ('webhook' in config) {
    const { url, headers } = config.webhook;
    return httpTarget(`webhook ${origin(url)}`, url, headers, (alert) => alert);
  }
  if ('slack' in config) {
    const { url, channel } = config.slack;
    return httpTarget(`slack ${origin(url)}`, url, undefined, (alert) => ({
      text: `*${alert.title}*\n${alert.text}`,
      ...(channel ? { channel } : {}),
    }));
  }
  return emailTarget(config.email);
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

function httpTarget(
  name: string,
  url: string,
  headers: Record<string, string> | undefined,
  shape: (alert: Alert) => unknown,
): AlertTarget {
  return {
    name,
    async send(alert, signal) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(shape(alert)),
        signal,
      });
      // The body is drained so the connection is released; only the status matters.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`${name} answered HTTP ${res.status}`);
    },
  };
}

type EmailConfig = Extract<AlertTargetT, { email: unknown }>['email'];

function emailTarget(config: EmailConfig): AlertTarget {
  const to = Array.isArray(config.to) ? config.to : [config.to];
  const { host, port, secure, user, password } = config.smtp;
  return {
    name: `email via ${host}:${port ?? (secure ? 465 : 587)}`,
    async send(alert, signal) {
      const nodemailer = await import('nodemailer');
      const transport = nodemailer.createTransport({
        host,
        port: port ?? (secure ? 465 : 587),
        secure: secure === true,
        ...(user !== undefined ? { auth: { user, pass: password ?? '' } } : {}),
        connectionTimeout: 15_000,
        greetingTimeout: 15_000,
        socketTimeout: 30_000,
      });
      const onAbort = () => transport.close();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await transport.sendMail({
          from: config.from,
          to,
          subject: alert.title,
          text: `${alert.text}\n\n${JSON.stringify(alert.details, null, 2)}\n`,
        });
      } finally {
        signal.removeEventListener('abort', onAbort);
        transport.close();
      }
    },
  };
}

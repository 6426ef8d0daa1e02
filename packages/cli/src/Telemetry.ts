/**
 * The CLI's exporters of metrics and traces, through the ecosystem's libraries (the library
 * packages record Effect metrics and spans and depend on no exporter):
 *
 * - {@link prometheus}: this process's Effect metrics in the Prometheus text format, read by
 *   `@effect/opentelemetry`'s metric producer and written by `@opentelemetry/exporter-prometheus`'s
 *   serializer. `serve` answers it at `GET /metrics`; `agent --metrics-port` on a port of its own
 *   ({@link serveMetrics}).
 * - {@link tracing}: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
 *   set, spans go over OTLP/HTTP (`@effect/opentelemetry`'s `OtlpTracer`; protobuf, or JSON with
 *   `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`; headers from `OTEL_EXPORTER_OTLP_HEADERS`). The HTTP
 *   client sends `traceparent`/`b3` and the server continues the trace it names, so an agent's
 *   push and the server's handling of it are one trace.
 *
 * Loaded only by the commands that use it, so other commands start without it.
 *
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as Resource from "@effect/opentelemetry/Resource"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"
import * as CliError from "./CliError.js"

/** `OTEL_SERVICE_NAME` when set, else the command's own name. */
const serviceName = (fallback: string) =>
  Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault(fallback), Effect.orElseSucceed(() => fallback))

/**
 * A renderer of this process's metrics (every Effect `Metric` it recorded) in the Prometheus
 * text format, for as long as the scope is open.
 *
 * @since 0.1.0
 * @category metrics
 */
export const prometheus = (service: string): Effect.Effect<Effect.Effect<string>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    const producer = yield* OtelMetrics.makeProducer.pipe(
      Effect.provide(Resource.layer({ serviceName: yield* serviceName(service) }))
    )
    yield* OtelMetrics.registerProducer(producer, () => exporter)
    // No otel_scope_name label on every series: they all come from one producer.
    const serializer = new PrometheusSerializer(undefined, undefined, undefined, false, true)
    return Effect.promise(() => exporter.collect()).pipe(
      // The format wants every line ended, the last one too; the serializer leaves it open.
      Effect.map(({ resourceMetrics }) => {
        const text = serializer.serialize(resourceMetrics)
        return text.endsWith("\n") ? text : `${text}\n`
      })
    )
  })

/**
 * `GET /metrics` with `render` on its own listener (`agent --metrics-port`); every other path
 * is 404. The `HttpServer` it provides tells the address bound.
 *
 * @since 0.1.0
 * @category metrics
 */
export const serveMetrics = (
  render: Effect.Effect<string>,
  options: { readonly port: number; readonly host: string }
): Layer.Layer<HttpServer.HttpServer, CliError.CliError> =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/metrics",
      Effect.map(render, (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4" }))
    ),
    HttpServer.serve(),
    Layer.provideMerge(NodeHttpServer.layer(() => createServer(), options)),
    Layer.mapError((e) =>
      CliError.failure(`cannot serve metrics on ${options.host}:${options.port}: ${String(e.cause)}`)
    )
  )

const parseHeaders = (raw: string): Record<string, string> =>
  Object.fromEntries(
    raw.split(",").map((pair) => pair.split("=")).filter((kv) => kv.length === 2).map(([k, v]) => [
      decodeURIComponent(k.trim()),
      decodeURIComponent(v.trim())
    ])
  )

const optionalEnv = (name: string) => Config.option(Config.nonEmptyString(name))

/**
 * Exports spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL,
 * `/v1/traces` appended) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) is set; else
 * nothing. Spans still buffered are sent when the command stops.
 *
 * @since 0.1.0
 * @category tracing
 */
export const tracing = (service: string): Layer.Layer<never, CliError.CliError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const base = yield* optionalEnv("OTEL_EXPORTER_OTLP_ENDPOINT")
      const full = yield* optionalEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
      const url = Option.orElse(full, () => Option.map(base, (b) => `${b.replace(/\/+$/, "")}/v1/traces`))
      if (Option.isNone(url)) return Layer.empty
      const protocol = Option.getOrElse(yield* optionalEnv("OTEL_EXPORTER_OTLP_PROTOCOL"), () => "http/protobuf")
      if (protocol !== "http/protobuf" && protocol !== "http/json") {
        return yield* CliError.failure(
          `OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported: use http/protobuf (the default) or http/json`
        )
      }
      const headers = Option.getOrElse(
        Option.map(yield* optionalEnv("OTEL_EXPORTER_OTLP_HEADERS"), parseHeaders),
        () => ({})
      )
      return OtlpTracer.layer({
        url: url.value,
        resource: { serviceName: yield* serviceName(service) },
        headers,
        exportInterval: "1 second"
      }).pipe(
        Layer.provide(protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    }).pipe(Effect.catchTag("ConfigError", (e) => CliError.failure(`bad OpenTelemetry setting: ${e.message}`)))
  )

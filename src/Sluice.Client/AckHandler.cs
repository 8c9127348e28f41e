namespace Sluice.Client;

/// <summary>
/// Receives the outcome of one message published with the callback form of
/// <see cref="SluiceClient.PublishAsync(string, ReadOnlyMemory{byte}, AckHandler, MessageOptions?, CancellationToken)"/>:
/// the ack (error null), or the error (ack null): <see cref="AckTimeoutException"/>, the server's
/// refusal, or <see cref="BrokerUnavailableException"/> when the connection broke.
/// </summary>
/// <param name="ack">The ack, or null on error.</param>
/// <param name="error">The error, or null on success.</param>
public delegate void AckHandler(SluiceAck? ack, Exception? error);

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

/// <summary>
/// <see cref="AckHandler"/> with a state argument: what
/// <see cref="SluiceClient.PublishAsync{TState}(string, ReadOnlyMemory{byte}, AckHandler{TState}, TState, MessageOptions?, CancellationToken)"/>
/// was given is passed back, so a static lambda can handle every message without a closure per publish.
/// </summary>
/// <typeparam name="TState">The type of the state.</typeparam>
/// <param name="ack">The ack, or null on error.</param>
/// <param name="error">The error, or null on success.</param>
/// <param name="state">The state given with the message.</param>
public delegate void AckHandler<in TState>(SluiceAck? ack, Exception? error, TState state);

namespace Sluice.Protocol.Envelopes;

/// <summary>Why an envelope could not be decoded.</summary>
public enum EnvelopeError
{
    MissingHeader,
    UnexpectedMagic,
    UnknownProtocol,
    TypeMismatch,
    IncorrectHeaderSize,
    CrcMismatch,
    InvalidPayload,
}

/// <summary>A payload is not a valid Liftbridge envelope of the expected type.</summary>
public sealed class EnvelopeException : Exception
{
    public EnvelopeException(EnvelopeError error, string message)
        : base(message) => Error = error;

    public EnvelopeException(EnvelopeError error, string message, Exception innerException)
        : base(message, innerException) => Error = error;

    public EnvelopeException()
        : this(EnvelopeError.InvalidPayload, "invalid envelope")
    {
    }

    public EnvelopeException(string message)
        : this(EnvelopeError.InvalidPayload, message)
    {
    }

    public EnvelopeException(string message, Exception innerException)
        : this(EnvelopeError.InvalidPayload, message, innerException)
    {
    }

    public EnvelopeError Error { get; }
}

using System.Security.Cryptography;

namespace Sluice.Client.Internal;

/// <summary>
/// Unique ids in the shape of NATS NUIDs: 22 base-62 characters, a 12-character random prefix
/// followed by a 10-character sequence that grows by a random step. Cheap (no lock, one string per
/// id) and unique enough to correlate acks across clients.
/// </summary>
internal sealed class Nuid
{
    private const string Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    private const int PrefixLength = 12;
    private const int SequenceLength = 10;
    private const long MaxSequence = 839_299_365_868_340_224L; // 62^10
    private const int MinIncrement = 33;
    private const int MaxIncrement = 333;

    [ThreadStatic]
    private static Nuid? _current;

    private readonly char[] _prefix = new char[PrefixLength];
    private long _sequence;
    private long _increment;

    private Nuid() => Reset();

    /// <summary>The next id of the calling thread's generator.</summary>
    public static string Next() => (_current ??= new Nuid()).NextId();

    private string NextId()
    {
        _sequence += _increment;
        if (_sequence >= MaxSequence)
        {
            Reset();
        }

        return string.Create(PrefixLength + SequenceLength, this, static (span, self) =>
        {
            self._prefix.CopyTo(span);
            var value = self._sequence;
            for (var i = span.Length - 1; i >= PrefixLength; i--)
            {
                span[i] = Digits[(int)(value % 62)];
                value /= 62;
            }
        });
    }

    private void Reset()
    {
        Span<byte> random = stackalloc byte[PrefixLength];
        RandomNumberGenerator.Fill(random);
        for (var i = 0; i < PrefixLength; i++)
        {
            _prefix[i] = Digits[random[i] % 62];
        }

        _sequence = Random.Shared.NextInt64(MaxSequence);
        _increment = Random.Shared.Next(MinIncrement, MaxIncrement);
    }
}

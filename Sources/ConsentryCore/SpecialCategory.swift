/// Recognizes column and field names that look like special-category data (GDPR Art. 9, CPRA "sensitive
/// personal information"), so that ingest can refuse them unless the policy declares them.
public enum SpecialCategory {
    /// Names of single words that mark a special category, mapped to the category they belong to.
    private static let words: [String: String] = [
        "health": "health", "medical": "health", "diagnosis": "health", "illness": "health", "disability": "health",
        "pregnancy": "health", "medication": "health", "religion": "religion", "religious": "religion", "faith": "religion",
        "ethnicity": "ethnicity", "ethnic": "ethnicity", "race": "ethnicity", "racial": "ethnicity",
        "sexuality": "sexual orientation", "biometric": "biometrics", "biometrics": "biometrics", "fingerprint": "biometrics",
        "faceprint": "biometrics", "genetic": "genetic data", "dna": "genetic data", "political": "political opinions",
        "latitude": "precise geolocation", "longitude": "precise geolocation", "lat": "precise geolocation",
        "lng": "precise geolocation", "lon": "precise geolocation", "gps": "precise geolocation", "geolocation": "precise geolocation",
    ]
    /// Pairs of adjacent words that mark a category together (neither is conclusive alone).
    private static let pairs: [String: String] = [
        "sexual_orientation": "sexual orientation", "sex_life": "sexual orientation", "trade_union": "trade-union membership",
        "precise_location": "precise geolocation", "geo_lat": "precise geolocation", "geo_lon": "precise geolocation",
    ]

    /// The special category that `name` suggests (for example `religion` for `religious_affiliation`), or nil.
    public static func category(ofName name: String) -> String? {
        let tokens = name.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
        for (index, token) in tokens.enumerated() {
            if let found = words[token] { return found }
            if index + 1 < tokens.count, let found = pairs[token + "_" + tokens[index + 1]] { return found }
        }
        return nil
    }
}

import Hummingbird
import HummingbirdTLS
import Metrics
import Prometheus
